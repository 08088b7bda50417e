//! The censor's on-path injector (`matador lab censor`): it watches the
//! traffic entering the censor from its node and *races* the network, like
//! the injectors of national firewalls: the original packet is never
//! dropped, so the genuine reply arrives too.
//!
//! - a DNS query (UDP/53, type A) for a configured name or any subdomain
//!   gets a forged answer with the configured address;
//! - a TCP segment whose payload contains a keyword (HTTP Host header, TLS
//!   SNI, ASCII case-insensitive) gets a RST (+ACK) sent back to the client
//!   in the server's name.
//!
//! Every injected packet carries the censor's own habits: a fixed IP TTL
//! and a constant IP-ID. Each injection is logged as one JSON line on
//! stdout (the lab's `censor-race.log`): the ground truth of
//! `tests/interference_lab.rs`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// What the injector forges (the `censor.race` block of a topology).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaceConfig {
    /// Forged DNS answers: name (and any subdomain) → address.
    #[serde(default)]
    pub dns: BTreeMap<String, Ipv4Addr>,
    /// Keywords whose appearance in a TCP payload draws an injected RST.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// IP TTL of every injected packet.
    #[serde(default = "default_ttl")]
    pub ttl: u8,
    /// IP-ID of every injected packet (constant, like real injectors).
    #[serde(default = "default_ip_id")]
    pub ip_id: u16,
}

fn default_ttl() -> u8 {
    50
}

fn default_ip_id() -> u16 {
    0x2b2b
}

/// One injected packet (a line of the injector's log).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Injection {
    /// `dns` or `rst`.
    pub kind: String,
    /// Client address (as seen by the censor, i.e. after the node's NAT).
    pub client: Ipv4Addr,
    /// Client port.
    pub client_port: u16,
    /// Server the injected packet claims to come from.
    pub server: Ipv4Addr,
    /// Server port.
    pub server_port: u16,
    /// Query name (`dns`) or keyword (`rst`).
    pub trigger: String,
    /// DNS transaction id (`dns`) or RST sequence number (`rst`).
    pub id: u32,
    /// Forged address (`dns`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forged: Option<Ipv4Addr>,
    /// IP TTL written.
    pub ttl: u8,
    /// IP-ID written.
    pub ip_id: u16,
}

/// Errors of the injector.
#[derive(Debug, thiserror::Error)]
pub enum CensorError {
    /// The capture/injection socket failed.
    #[error("censor injector on {iface}: {message}")]
    Pcap {
        /// Interface concerned.
        iface: String,
        /// What failed.
        message: String,
    },
}

fn be16(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

fn be32(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?))
}

fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for p in parts {
        for c in p.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], 0])
            };
            sum += u32::from(w);
        }
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The parts of an Ethernet/IPv4 frame the injector needs.
struct Frame<'a> {
    eth_dst: &'a [u8],
    eth_src: &'a [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    l4: &'a [u8],
}

fn parse(frame: &[u8]) -> Option<Frame<'_>> {
    if be16(frame, 12)? != 0x0800 {
        return None;
    }
    let ip = frame.get(14..)?;
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    let total = usize::from(be16(ip, 2)?);
    // Fragments are not inspected (neither are they by real DNS injectors).
    if ihl < 20 || total < ihl || be16(ip, 6)? & 0x3fff != 0 {
        return None;
    }
    Some(Frame {
        eth_dst: &frame[0..6],
        eth_src: &frame[6..12],
        src: Ipv4Addr::from(be32(ip, 12)?),
        dst: Ipv4Addr::from(be32(ip, 16)?),
        proto: ip[9],
        l4: ip.get(ihl..total)?,
    })
}

/// Ethernet + IPv4 header of an injected packet back to `f`'s sender.
fn reply_headers(f: &Frame<'_>, proto: u8, l4_len: usize, cfg: &RaceConfig) -> Vec<u8> {
    let mut out = Vec::with_capacity(34 + l4_len);
    out.extend_from_slice(f.eth_src);
    out.extend_from_slice(f.eth_dst);
    out.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + l4_len) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[4..6].copy_from_slice(&cfg.ip_id.to_be_bytes());
    ip[8] = cfg.ttl;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&f.dst.octets());
    ip[16..20].copy_from_slice(&f.src.octets());
    let c = checksum(&[&ip]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    out.extend_from_slice(&ip);
    out
}

/// Reads the question name of a DNS message (no compression in questions).
fn qname(dns: &[u8]) -> Option<(String, usize)> {
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let n = usize::from(*dns.get(i)?);
        if n == 0 {
            break;
        }
        if n > 63 {
            return None;
        }
        let l = dns.get(i + 1..i + 1 + n)?;
        labels.push(String::from_utf8_lossy(l).to_ascii_lowercase());
        i += 1 + n;
    }
    Some((labels.join("."), i + 1))
}

/// The forged answer for a DNS query frame, if the query is for a
/// configured name.
pub fn forge_dns(frame: &[u8], cfg: &RaceConfig) -> Option<(Vec<u8>, Injection)> {
    let f = parse(frame)?;
    if f.proto != 17 || be16(f.l4, 2)? != 53 {
        return None;
    }
    let dns = f.l4.get(8..)?;
    let (id, flags, qd) = (be16(dns, 0)?, be16(dns, 2)?, be16(dns, 4)?);
    if flags & 0x8000 != 0 || qd != 1 {
        return None;
    }
    let (name, end) = qname(dns)?;
    if be16(dns, end)? != 1 || be16(dns, end + 2)? != 1 {
        return None;
    }
    let (_, addr) = cfg
        .dns
        .iter()
        .find(|(n, _)| name == **n || name.ends_with(&format!(".{n}")))?;
    let mut msg = Vec::new();
    msg.extend_from_slice(&id.to_be_bytes());
    msg.extend_from_slice(&(0x8080 | (flags & 0x0100)).to_be_bytes());
    msg.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0]);
    msg.extend_from_slice(dns.get(12..end + 4)?);
    msg.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x01, 0x2c, 0, 4]);
    msg.extend_from_slice(&addr.octets());
    let sport = be16(f.l4, 0)?;
    let mut udp = Vec::with_capacity(8 + msg.len());
    udp.extend_from_slice(&53u16.to_be_bytes());
    udp.extend_from_slice(&sport.to_be_bytes());
    udp.extend_from_slice(&((8 + msg.len()) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]); // UDP checksum optional on IPv4
    udp.extend_from_slice(&msg);
    let mut out = reply_headers(&f, 17, udp.len(), cfg);
    out.extend_from_slice(&udp);
    Some((
        out,
        Injection {
            kind: "dns".into(),
            client: f.src,
            client_port: sport,
            server: f.dst,
            server_port: 53,
            trigger: name,
            id: u32::from(id),
            forged: Some(*addr),
            ttl: cfg.ttl,
            ip_id: cfg.ip_id,
        },
    ))
}

/// The RST for a TCP segment whose payload holds a keyword.
pub fn forge_rst(frame: &[u8], cfg: &RaceConfig) -> Option<(Vec<u8>, Injection)> {
    let f = parse(frame)?;
    if f.proto != 6 {
        return None;
    }
    let doff = usize::from(f.l4.get(12)? >> 4) * 4;
    let payload = f.l4.get(doff..)?;
    if doff < 20 || payload.is_empty() {
        return None;
    }
    let lower = payload.to_ascii_lowercase();
    let kw = cfg.keywords.iter().find(|k| {
        let k = k.to_ascii_lowercase();
        !k.is_empty() && lower.windows(k.len()).any(|w| w == k.as_bytes())
    })?;
    let (sport, dport) = (be16(f.l4, 0)?, be16(f.l4, 2)?);
    let (seq, ack) = (be32(f.l4, 4)?, be32(f.l4, 8)?);
    let mut tcp = [0u8; 20];
    tcp[0..2].copy_from_slice(&dport.to_be_bytes());
    tcp[2..4].copy_from_slice(&sport.to_be_bytes());
    tcp[4..8].copy_from_slice(&ack.to_be_bytes());
    tcp[8..12].copy_from_slice(&seq.wrapping_add(payload.len() as u32).to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x14; // RST + ACK
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&f.dst.octets());
    pseudo.extend_from_slice(&f.src.octets());
    pseudo.extend_from_slice(&[0, 6, 0, 20]);
    let c = checksum(&[&pseudo, &tcp]);
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    let mut out = reply_headers(&f, 6, tcp.len(), cfg);
    out.extend_from_slice(&tcp);
    Some((
        out,
        Injection {
            kind: "rst".into(),
            client: f.src,
            client_port: sport,
            server: f.dst,
            server_port: dport,
            trigger: kw.clone(),
            id: ack,
            forged: None,
            ttl: cfg.ttl,
            ip_id: cfg.ip_id,
        },
    ))
}

/// Watches `iface` (the censor's link to its node) and injects until the
/// process is killed; prints `started` once the capture is open and one
/// JSON [`Injection`] per injected packet.
pub fn run(iface: &str, cfg: &RaceConfig) -> Result<(), CensorError> {
    let err = |e: pcap::Error| CensorError::Pcap {
        iface: iface.to_string(),
        message: e.to_string(),
    };
    let mut cap = pcap::Capture::from_device(iface)
        .map_err(err)?
        .immediate_mode(true)
        .snaplen(2048)
        .open()
        .map_err(err)?;
    cap.direction(pcap::Direction::In).map_err(err)?;
    cap.filter("ip and (udp dst port 53 or tcp)", true)
        .map_err(err)?;
    println!("started");
    loop {
        let frame = match cap.next_packet() {
            Ok(p) => p.data.to_vec(),
            Err(pcap::Error::TimeoutExpired) => continue,
            Err(e) => return Err(err(e)),
        };
        let forged = forge_dns(&frame, cfg).or_else(|| forge_rst(&frame, cfg));
        if let Some((pkt, inj)) = forged {
            cap.sendpacket(pkt).map_err(err)?;
            if let Ok(line) = serde_json::to_string(&inj) {
                println!("{line}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> RaceConfig {
        RaceConfig {
            dns: [(
                "blocked.example".to_string(),
                Ipv4Addr::new(198, 18, 250, 7),
            )]
            .into(),
            keywords: vec!["forbidden-keyword".into()],
            ttl: 50,
            ip_id: 0x2b2b,
        }
    }

    fn frame(proto: u8, l4: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 0];
        let total = (20 + l4.len()) as u16;
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[0, 7, 0x40, 0, 63, proto, 0, 0]);
        f.extend_from_slice(&[198, 18, 136, 2, 198, 18, 98, 53]);
        f.extend_from_slice(l4);
        f
    }

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut d = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            d.push(l.len() as u8);
            d.extend_from_slice(l.as_bytes());
        }
        d.extend_from_slice(&[0, 0, qtype as u8, 0, 1]);
        let mut u = vec![0xa0, 0x00, 0, 53];
        u.extend_from_slice(&((8 + d.len()) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(&d);
        frame(17, &u)
    }

    #[test]
    fn forges_subdomains_only_for_type_a() {
        let (pkt, inj) = forge_dns(&query("www.Blocked.example", 1), &cfg()).unwrap();
        assert_eq!(inj.trigger, "www.blocked.example");
        assert_eq!(inj.id, 0x1234);
        assert_eq!(inj.client_port, 0xa000);
        // Swapped MACs and addresses, censor's TTL and IP-ID.
        assert_eq!(&pkt[0..6], &[2, 0, 0, 0, 0, 2]);
        assert_eq!(pkt[14 + 8], 50);
        assert_eq!(&pkt[18..20], &[0x2b, 0x2b]);
        assert_eq!(&pkt[26..30], &[198, 18, 98, 53]);
        assert_eq!(checksum(&[&pkt[14..34]]), 0);
        assert_eq!(&pkt[pkt.len() - 4..], &[198, 18, 250, 7]);
        let dns = pkt.get(42..).unwrap();
        assert_eq!(qname(dns).unwrap().0, "www.blocked.example");
        assert!(forge_dns(&query("blocked.example", 28), &cfg()).is_none());
        assert!(forge_dns(&query("notblocked.example", 1), &cfg()).is_none());
        assert!(forge_dns(&query("example", 1), &cfg()).is_none());
        assert!(forge_dns(&[0u8; 10], &cfg()).is_none());
    }

    #[test]
    fn rst_on_keyword_acks_the_payload() {
        let mut t = vec![
            0xa0, 0x01, 0, 80, 0, 0, 0, 100, 0, 0, 0, 200, 0x50, 0x18, 1, 0,
        ];
        t.extend_from_slice(&[0, 0, 0, 0]);
        t.extend_from_slice(b"GET / HTTP/1.1\r\nHost: Forbidden-Keyword.example\r\n\r\n");
        let (pkt, inj) = forge_rst(&frame(6, &t), &cfg()).unwrap();
        assert_eq!(inj.trigger, "forbidden-keyword");
        let tcp = &pkt[34..];
        assert_eq!(&tcp[0..4], &[0, 80, 0xa0, 0x01]);
        assert_eq!(be32(tcp, 4), Some(200));
        assert_eq!(be32(tcp, 8), Some(100 + (t.len() as u32 - 20)));
        assert_eq!(tcp[13], 0x14);
        let mut pseudo = pkt[26..34].to_vec();
        pseudo.extend_from_slice(&[0, 6, 0, 20]);
        assert_eq!(checksum(&[&pseudo, tcp]), 0);
        t.truncate(20);
        assert!(forge_rst(&frame(6, &t), &cfg()).is_none());
    }
}
