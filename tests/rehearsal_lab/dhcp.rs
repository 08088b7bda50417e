//! A minimal DHCP client (RFC 2131 DISCOVER/OFFER/REQUEST/ACK, options of
//! RFC 2132), run inside a phone's namespace, so the phones take their
//! address, gateway and resolver from the router's generated dnsmasq.conf
//! as real phones do (no DHCP client is installed on this machine).
//!
//! It uses a UDP socket on port 68 with SO_BROADCAST and a host route for
//! the limited broadcast on the interface; the broadcast flag asks the
//! server to broadcast its answers (the client has no address yet).

use std::net::{Ipv4Addr, UdpSocket};
use std::time::Duration;

/// What the server leased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// `yiaddr`.
    pub addr: Ipv4Addr,
    /// Option 1.
    pub mask: Option<Ipv4Addr>,
    /// Option 3 (first).
    pub router: Option<Ipv4Addr>,
    /// Option 6 (first).
    pub dns: Option<Ipv4Addr>,
}

const COOKIE: [u8; 4] = [99, 130, 83, 99];

/// DHCP options as (code, value).
type Options = Vec<(u8, Vec<u8>)>;

/// A BOOTREQUEST of DHCP message type `kind` with `extra` options.
fn request(xid: u32, mac: [u8; 6], kind: u8, extra: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut m = vec![0u8; 236];
    m[0] = 1; // BOOTREQUEST
    m[1] = 1; // Ethernet
    m[2] = 6;
    m[4..8].copy_from_slice(&xid.to_be_bytes());
    m[10] = 0x80; // broadcast flag
    m[28..34].copy_from_slice(&mac);
    m.extend(COOKIE);
    m.extend([53, 1, kind]);
    m.extend([55, 3, 1, 3, 6]); // ask for mask, router, DNS
    for (code, v) in extra {
        m.push(*code);
        m.push(v.len() as u8);
        m.extend(v);
    }
    m.push(255);
    m
}

/// The options of a BOOTREPLY for `xid` (`None`: not ours or malformed).
fn options(msg: &[u8], xid: u32) -> Option<Options> {
    if msg.len() < 240 || msg[0] != 2 || msg[4..8] != xid.to_be_bytes() || msg[236..240] != COOKIE {
        return None;
    }
    let mut out = Vec::new();
    let mut i = 240;
    while i < msg.len() && msg[i] != 255 {
        if msg[i] == 0 {
            i += 1;
            continue;
        }
        let len = usize::from(*msg.get(i + 1)?);
        out.push((msg[i], msg.get(i + 2..i + 2 + len)?.to_vec()));
        i += 2 + len;
    }
    Some(out)
}

fn opt(opts: &[(u8, Vec<u8>)], code: u8) -> Option<&[u8]> {
    opts.iter()
        .find(|(c, _)| *c == code)
        .map(|(_, v)| v.as_slice())
}

fn ip4(v: Option<&[u8]>) -> Option<Ipv4Addr> {
    v.filter(|v| v.len() >= 4)
        .map(|v| Ipv4Addr::new(v[0], v[1], v[2], v[3]))
}

/// Sends `msg` and waits for the reply of DHCP message type `want`.
fn exchange(s: &UdpSocket, msg: &[u8], xid: u32, want: u8) -> std::io::Result<(Ipv4Addr, Options)> {
    let mut buf = [0u8; 1500];
    for _ in 0..5 {
        s.send_to(msg, (Ipv4Addr::BROADCAST, 67))?;
        while let Ok(n) = s.recv(&mut buf) {
            let Some(o) = options(&buf[..n], xid) else {
                continue;
            };
            if opt(&o, 53) == Some(&[want][..]) {
                let yi = Ipv4Addr::new(buf[16], buf[17], buf[18], buf[19]);
                return Ok((yi, o));
            }
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("no DHCP answer of type {want}"),
    ))
}

/// DISCOVER → OFFER → REQUEST → ACK on `ifname` of namespace `ns` for
/// `mac` (`aa:bb:…`); the caller configures the lease.
pub fn lease(ns: &str, ifname: &str, mac: &str) -> Lease {
    let mut hw = [0u8; 6];
    for (b, h) in hw.iter_mut().zip(mac.split(':')) {
        *b = u8::from_str_radix(h, 16).expect("MAC");
    }
    super::ip(
        Some(ns),
        &["route", "add", "255.255.255.255/32", "dev", ifname],
    );
    let xid = u32::from_be_bytes([hw[2], hw[3], hw[4], hw[5]]) ^ std::process::id();
    let r = matador::net::netns::run_in(Some(ns), move || {
        let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 68))?;
        s.set_broadcast(true)?;
        s.set_read_timeout(Some(Duration::from_millis(700)))?;
        let (yi, offer) = exchange(&s, &request(xid, hw, 1, &[]), xid, 2)?;
        let server = opt(&offer, 54).unwrap_or_default().to_vec();
        let req = request(xid, hw, 3, &[(50, yi.octets().to_vec()), (54, server)]);
        let (addr, ack) = exchange(&s, &req, xid, 5)?;
        Ok(Lease {
            addr,
            mask: ip4(opt(&ack, 1)),
            router: ip4(opt(&ack, 3)),
            dns: ip4(opt(&ack, 6)),
        })
    });
    r.unwrap_or_else(|e| panic!("DHCP for {mac} in {ns}: {e}"))
}
