//! Health of a tunnel and DNS through the node.
//!
//! A tunnel is healthy when its interface exists, the node's tunnel address
//! answers a ping through it, and a handshake completed recently. The DNS
//! check asks the phone's resolver from the phone's side and verifies on
//! the router that the resolver is routed into the phone's tunnel, so the
//! answer comes via the node (the original's "check + DHCP DNS update").

use super::NetError;
use super::cmd::Cmd;
use simple_dns::rdata::RData;
use simple_dns::{CLASS, Name, Packet, PacketFlag, Question, TYPE};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Handshakes older than this mean the tunnel is dead (WireGuard
/// re-handshakes every 2 minutes while traffic flows).
pub const MAX_HANDSHAKE_AGE: Duration = Duration::from_secs(180);

/// What to check for one node's tunnel.
#[derive(Debug, Clone)]
pub struct TunnelCheck {
    /// Node name (for messages).
    pub node: String,
    /// Router namespace (`None`: this machine).
    pub router_ns: Option<String>,
    /// Tunnel interface on the router.
    pub ifname: String,
    /// The node's address inside the tunnel.
    pub peer: IpAddr,
}

/// A healthy tunnel's figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TunnelHealth {
    /// Node name.
    pub node: String,
    /// Age of the latest handshake in seconds.
    pub handshake_age_s: u64,
    /// Round-trip time of a ping through the tunnel, in milliseconds.
    pub rtt_ms: f64,
}

fn unhealthy(node: &str, message: String) -> NetError {
    NetError::Unhealthy {
        node: node.into(),
        message,
    }
}

/// Parses `time=0.123 ms` from ping output.
pub fn parse_rtt(out: &str) -> Option<f64> {
    let i = out.find("time=")?;
    out[i + 5..].split_whitespace().next()?.parse().ok()
}

/// Checks one tunnel; the error names the node and what failed.
pub fn check_tunnel(t: &TunnelCheck) -> Result<TunnelHealth, NetError> {
    let ns = t.router_ns.as_deref();
    let mut show = Cmd::new("ip");
    if let Some(n) = ns {
        show = show.args(["-n", n]);
    }
    if !show.args(["link", "show", &t.ifname]).succeeds()? {
        return Err(unhealthy(
            &t.node,
            format!(
                "tunnel interface {} is gone (is wireguard-go for it still running?)",
                t.ifname
            ),
        ));
    }
    let mut rtt = None;
    for _ in 0..3 {
        let (ok, out, _) = Cmd::new("ping")
            .netns(ns)
            .args(["-n", "-c", "1", "-W", "1", "-I", &t.ifname])
            .arg(t.peer.to_string())
            .timeout(Duration::from_secs(4))
            .output()?;
        if ok {
            rtt = parse_rtt(&out);
            if rtt.is_some() {
                break;
            }
        }
    }
    let age = super::wg::handshake_age(ns, &t.ifname).map_err(|e| {
        unhealthy(
            &t.node,
            format!("cannot read tunnel {} state: {e}", t.ifname),
        )
    })?;
    let Some(rtt) = rtt else {
        return Err(unhealthy(
            &t.node,
            match age {
                None => format!(
                    "tunnel {} handshake never completed; no ping reply from {} (node unreachable or wrong key/endpoint)",
                    t.ifname, t.peer
                ),
                Some(a) => format!(
                    "no ping reply from {} through tunnel {} (last handshake {} s ago)",
                    t.peer,
                    t.ifname,
                    a.as_secs()
                ),
            },
        ));
    };
    match age {
        None => Err(unhealthy(
            &t.node,
            format!("tunnel {} handshake never completed", t.ifname),
        )),
        Some(a) if a > MAX_HANDSHAKE_AGE => Err(unhealthy(
            &t.node,
            format!("tunnel {} last handshake {} s ago", t.ifname, a.as_secs()),
        )),
        Some(a) => Ok(TunnelHealth {
            node: t.node.clone(),
            handshake_age_s: a.as_secs(),
            rtt_ms: rtt,
        }),
    }
}

/// Builds an A (or, with `aaaa`, AAAA) query for `name`.
fn query(name: &str, id: u16, aaaa: bool) -> Result<Vec<u8>, String> {
    let mut q = Packet::new_query(id);
    q.set_flags(PacketFlag::RECURSION_DESIRED);
    q.questions.push(Question::new(
        Name::new(name).map_err(|e| e.to_string())?,
        if aaaa { TYPE::AAAA } else { TYPE::A }.into(),
        CLASS::IN.into(),
        false,
    ));
    q.build_bytes_vec().map_err(|e| e.to_string())
}

/// Asks `resolver` for the A records of `name` from inside namespace `ns`.
pub fn resolve_in(
    ns: Option<&str>,
    resolver: SocketAddr,
    name: &str,
) -> Result<Vec<IpAddr>, NetError> {
    resolve_type_in(ns, resolver, name, false)
}

/// Asks `resolver` for the AAAA records of `name` from inside namespace `ns`.
pub fn resolve6_in(
    ns: Option<&str>,
    resolver: SocketAddr,
    name: &str,
) -> Result<Vec<IpAddr>, NetError> {
    resolve_type_in(ns, resolver, name, true)
}

fn resolve_type_in(
    ns: Option<&str>,
    resolver: SocketAddr,
    name: &str,
    aaaa: bool,
) -> Result<Vec<IpAddr>, NetError> {
    let id = (std::process::id() as u16) ^ 0x5a5a;
    let bytes = query(name, id, aaaa).map_err(|message| NetError::Invalid {
        what: "DNS name",
        value: name.into(),
        message,
    })?;
    let name2 = name.to_string();
    super::netns::run_in(ns, move || {
        let bind: SocketAddr = if resolver.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let s = std::net::UdpSocket::bind(bind)?;
        s.set_read_timeout(Some(Duration::from_millis(700)))?;
        s.connect(resolver)?;
        let mut buf = [0u8; 1500];
        for _ in 0..3 {
            s.send(&bytes)?;
            match s.recv(&mut buf) {
                Ok(n) => {
                    let p = Packet::parse(&buf[..n]).map_err(|e| {
                        std::io::Error::other(format!("bad DNS reply for {name2}: {e}"))
                    })?;
                    if p.id() != id {
                        continue;
                    }
                    return Ok(p
                        .answers
                        .iter()
                        .filter_map(|rr| match &rr.rdata {
                            RData::A(a) => Some(IpAddr::from(std::net::Ipv4Addr::from(a.address))),
                            RData::AAAA(a) => {
                                Some(IpAddr::from(std::net::Ipv6Addr::from(a.address)))
                            }
                            _ => None,
                        })
                        .collect());
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no DNS answer from {resolver} for {name2}"),
        ))
    })
}

/// What the DNS check needs.
#[derive(Debug, Clone)]
pub struct DnsCheck {
    /// Node the phone is assigned to.
    pub node: String,
    /// Router namespace.
    pub router_ns: Option<String>,
    /// The router's WLAN interface (where phone traffic arrives).
    pub wlan_if: String,
    /// The node's tunnel interface on the router.
    pub tunnel_if: String,
    /// The phone's address.
    pub phone: IpAddr,
    /// Namespace from which to ask (the phone's in the virtual lab).
    pub ask_from: Option<String>,
    /// The phone's resolver.
    pub resolver: SocketAddr,
    /// A name the resolver must answer.
    pub name: String,
}

/// Checks that the phone's resolver is routed through the node's tunnel
/// and answers; returns the addresses.
pub fn check_dns(c: &DnsCheck) -> Result<Vec<IpAddr>, NetError> {
    let ns = c.router_ns.as_deref();
    // The phone's packets arrive where the router reaches the phone: on a
    // real router that is the WLAN card, not the phone's capture interface
    // (`c-<phone>`, a veth nothing is routed from) a scenario names.
    let iif = super::routing::dev_towards(ns, c.phone)
        .ok()
        .flatten()
        .unwrap_or_else(|| c.wlan_if.clone());
    let dev = super::routing::route_dev(ns, c.resolver.ip(), c.phone, &iif)
        .map_err(|e| unhealthy(&c.node, format!("DNS route check: {e}")))?;
    if dev.as_deref() != Some(c.tunnel_if.as_str()) {
        return Err(unhealthy(
            &c.node,
            format!(
                "resolver {} of phone {} is routed via {} instead of tunnel {}",
                c.resolver,
                c.phone,
                dev.as_deref().unwrap_or("nothing"),
                c.tunnel_if
            ),
        ));
    }
    let ips = match (&c.ask_from, c.resolver) {
        (Some(from), _) => resolve_in(Some(from), c.resolver, &c.name)
            .map_err(|e| unhealthy(&c.node, format!("DNS through the tunnel: {e}")))?,
        // No phone side to ask from (a real router): the router's own
        // queries follow its main table out of the uplink, so ask from its
        // inner tunnel address, whose rule (router-up.sh) sends the query
        // into the same tunnel (as `matador router check` does).
        (None, SocketAddr::V4(r)) if r.port() == 53 => {
            let bind = super::routing::addr_v4_of(ns, &c.tunnel_if)
                .map_err(|e| unhealthy(&c.node, format!("DNS through the tunnel: {e}")))?;
            super::router::check::ask(ns, bind, *r.ip(), &c.name).map_err(|e| {
                unhealthy(
                    &c.node,
                    format!(
                        "DNS through the tunnel: no answer from {} via {} from {}: {e}",
                        c.resolver,
                        c.tunnel_if,
                        bind.map(|b| b.to_string()).unwrap_or_else(|| "?".into())
                    ),
                )
            })?
        }
        (None, _) => resolve_in(None, c.resolver, &c.name)
            .map_err(|e| unhealthy(&c.node, format!("DNS through the tunnel: {e}")))?,
    };
    if ips.is_empty() {
        return Err(unhealthy(
            &c.node,
            format!("resolver {} has no address for {}", c.resolver, c.name),
        ));
    }
    Ok(ips)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtt_from_ping_output() {
        let out = "64 bytes from 198.18.99.2: icmp_seq=1 ttl=64 time=0.412 ms\n";
        assert_eq!(parse_rtt(out), Some(0.412));
        assert_eq!(parse_rtt("no reply"), None);
    }
}
