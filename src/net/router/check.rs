//! `matador router check`: verifies a running router against its
//! description and explains every failure with a fix.
//!
//! Checked, in order: interfaces up (WLAN, every tunnel), forwarding on,
//! phones present (dnsmasq lease per MAC where DHCP is used, and an answer
//! to ping), each phone's `ip rule`, each node's table (tunnel default route
//! plus the `unreachable` fallback, nothing else), the tunnels (handshake
//! age, ping of the node's inner address), DNS answered through the node,
//! and leaks: the route the kernel picks for a phone must be its tunnel,
//! and with the tunnel gone the phone's table must end in `unreachable`
//! (so nothing can fall through to the router's own uplink).

use super::{RealLab, RouterSite};
use crate::net::cmd::Cmd;
use crate::net::health;
use serde::Serialize;
use simple_dns::rdata::RData;
use simple_dns::{CLASS, Name, Packet, PacketFlag, Question, TYPE};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// As expected.
    Ok,
    /// Works, but a second line of defence or a detail is missing.
    Warn,
    /// Broken: campaigns must not run.
    Fail,
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// What was checked (e.g. `rule lab-a`).
    pub name: String,
    /// Outcome.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// How to fix it (failures and warnings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

struct Report(Vec<CheckResult>);

impl Report {
    fn ok(&mut self, name: String, detail: String) {
        self.0.push(CheckResult {
            name,
            status: Status::Ok,
            detail,
            fix: None,
        });
    }
    fn bad(&mut self, status: Status, name: String, detail: String, fix: String) {
        self.0.push(CheckResult {
            name,
            status,
            detail,
            fix: Some(fix),
        });
    }
}

fn ip(ns: Option<&str>) -> Cmd {
    match ns {
        Some(n) => Cmd::new("ip").args(["-n", n]),
        None => Cmd::new("ip"),
    }
}

fn run(c: Cmd) -> String {
    match c.output() {
        Ok((_, out, err)) => out + &err,
        Err(e) => e.to_string(),
    }
}

/// Whether `ip -o link show dev IF` says the link exists and is up.
fn link_state(ns: Option<&str>, ifname: &str) -> Option<bool> {
    let (ok, out, _) = ip(ns)
        .args(["-o", "link", "show", "dev", ifname])
        .output()
        .ok()?;
    if !ok {
        return None;
    }
    let flags = out.split('<').nth(1)?.split('>').next()?;
    Some(flags.split(',').any(|f| f == "UP"))
}

/// One DNS query for `name` to `resolver` from namespace `ns`, with the
/// source address `bind` (`None`: chosen by the kernel).
pub fn ask(
    ns: Option<&str>,
    bind: Option<Ipv4Addr>,
    resolver: Ipv4Addr,
    name: &str,
) -> Result<Vec<IpAddr>, String> {
    let id = (std::process::id() as u16) ^ 0x4d54;
    let mut q = Packet::new_query(id);
    q.set_flags(PacketFlag::RECURSION_DESIRED);
    q.questions.push(Question::new(
        Name::new(name).map_err(|e| e.to_string())?,
        TYPE::A.into(),
        CLASS::IN.into(),
        false,
    ));
    let bytes = q.build_bytes_vec().map_err(|e| e.to_string())?;
    let r = crate::net::netns::run_in(ns, move || {
        let s = std::net::UdpSocket::bind(SocketAddr::from((
            bind.unwrap_or(Ipv4Addr::UNSPECIFIED),
            0,
        )))?;
        s.set_read_timeout(Some(Duration::from_millis(800)))?;
        s.connect(SocketAddr::from((resolver, 53)))?;
        let mut buf = [0u8; 1500];
        for _ in 0..3 {
            s.send(&bytes)?;
            match s.recv(&mut buf) {
                Ok(n) => {
                    let Ok(p) = Packet::parse(&buf[..n]) else {
                        continue;
                    };
                    if p.id() != id {
                        continue;
                    }
                    return Ok(p
                        .answers
                        .iter()
                        .filter_map(|rr| match &rr.rdata {
                            RData::A(a) => Some(IpAddr::from(Ipv4Addr::from(a.address))),
                            _ => None,
                        })
                        .collect());
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no answer within 2.4 s",
        ))
    });
    r.map_err(|e| e.to_string())
}

/// Bytes received through a WireGuard interface (all peers).
fn rx_bytes(ns: Option<&str>, ifname: &str) -> u64 {
    let out = run(Cmd::new("wg").netns(ns).args(["show", ifname, "transfer"]));
    out.lines()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

/// Parses `ip -o route show table T` lines into (kind, dev, metric).
fn table_routes(out: &str) -> Vec<(String, Option<String>, u32)> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let after = |k: &str| {
                w.iter()
                    .position(|x| *x == k)
                    .and_then(|i| w.get(i + 1))
                    .map(|s| s.to_string())
            };
            let kind = if w.first() == Some(&"unreachable")
                || w.first() == Some(&"prohibit")
                || w.first() == Some(&"blackhole")
            {
                format!("{} {}", w[0], w.get(1).copied().unwrap_or(""))
            } else {
                w.first().copied().unwrap_or("").to_string()
            };
            let metric = after("metric").and_then(|m| m.parse().ok()).unwrap_or(0);
            (kind, after("dev"), metric)
        })
        .collect()
}

/// An address outside every lab prefix, used only in `ip route get` (no
/// packet is sent): TEST-NET-3.
const PROBE_DST: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

/// Runs every check; the router is healthy when no result is [`Status::Fail`].
pub fn check(lab: &RealLab, site: &RouterSite) -> Vec<CheckResult> {
    let mut r = Report(Vec::new());
    let ns = site.netns.as_deref();
    let tunnels = lab.tunnels();
    let phones = lab.phone_plans();
    let w = &lab.router.wlan_if;
    let in_ns = |cmd: &str| match ns {
        Some(n) => format!("ip netns exec {n} {cmd}"),
        None => cmd.to_string(),
    };

    // Interfaces.
    match link_state(ns, w) {
        Some(true) => r.ok(format!("interface {w}"), "up".into()),
        Some(false) => r.bad(
            Status::Fail,
            format!("interface {w}"),
            "WLAN interface is down".into(),
            format!(
                "start the access point: `hostapd -B hostapd.conf` (it brings {w} up); check `{}`",
                in_ns(&format!("ip link show {w}"))
            ),
        ),
        None => r.bad(
            Status::Fail,
            format!("interface {w}"),
            "WLAN interface does not exist".into(),
            "check router.wlan_if against `iw dev` (the AP-capable card) and that its driver is loaded".into(),
        ),
    }
    for (t, ifname) in tunnels.iter().zip(&site.tunnel_ifs) {
        match link_state(ns, ifname) {
            Some(true) => r.ok(
                format!("interface {ifname}"),
                format!("tunnel to {} up", t.node),
            ),
            Some(false) => r.bad(
                Status::Fail,
                format!("interface {ifname}"),
                format!(
                    "tunnel to {} is down (its routes are gone: phones of {} get unreachable)",
                    t.node, t.node
                ),
                format!(
                    "`{}`, then run router-up.sh again",
                    in_ns(&format!("ip link set {ifname} up"))
                ),
            ),
            None => r.bad(
                Status::Fail,
                format!("interface {ifname}"),
                format!("tunnel to {} does not exist", t.node),
                "run router-up.sh (is wireguard-go for it still running?)".into(),
            ),
        }
    }
    let fwd = run(Cmd::new("sysctl")
        .netns(ns)
        .args(["-n", "net.ipv4.ip_forward"]));
    if fwd.trim() == "1" {
        r.ok("forwarding".into(), "net.ipv4.ip_forward = 1".into());
    } else {
        r.bad(
            Status::Fail,
            "forwarding".into(),
            format!("net.ipv4.ip_forward = {}", fwd.trim()),
            "`sysctl -p sysctl.conf` (generated by router config)".into(),
        );
    }

    // Phones on the WLAN.
    let leases = site
        .leases
        .as_ref()
        .map(|p| (p, std::fs::read_to_string(p)));
    for (p, plan) in lab.phones.iter().zip(&phones) {
        if let Some((path, text)) = &leases {
            let mac = super::parse_mac(&p.mac).unwrap_or_default();
            match text {
                Ok(t) => {
                    let lease = t.lines().find(|l| {
                        l.split_whitespace()
                            .nth(1)
                            .is_some_and(|m| m.eq_ignore_ascii_case(&mac))
                    });
                    match lease {
                        Some(l) if l.split_whitespace().nth(2) == Some(p.addr.to_string().as_str()) => {
                            r.ok(format!("lease {}", p.name), format!("{mac} → {}", p.addr))
                        }
                        Some(l) => r.bad(
                            Status::Fail,
                            format!("lease {}", p.name),
                            format!("lease for {mac} is not {}: {l}", p.addr),
                            "restart dnsmasq with the generated dnsmasq.conf (static lease per MAC)".into(),
                        ),
                        None => r.bad(
                            Status::Fail,
                            format!("lease {}", p.name),
                            format!("no DHCP lease for {mac} in {}", path.display()),
                            format!(
                                "join {} on the phone with MAC randomisation off for this network (Wi-Fi → {} → Privacy → device MAC) and check that its MAC is {mac}",
                                lab.router.ssid, lab.router.ssid
                            ),
                        ),
                    }
                }
                Err(e) => r.bad(
                    Status::Fail,
                    format!("lease {}", p.name),
                    format!("cannot read {}: {e}", path.display()),
                    "start dnsmasq with the generated dnsmasq.conf".into(),
                ),
            }
        }
        let (ok, _, _) = Cmd::new("ping")
            .netns(ns)
            .args(["-n", "-c", "1", "-W", "1"])
            .arg(p.addr.to_string())
            .timeout(Duration::from_secs(3))
            .output()
            .unwrap_or((false, String::new(), String::new()));
        if ok {
            r.ok(format!("phone {}", p.name), format!("{} answers", p.addr));
        } else {
            r.bad(
                Status::Fail,
                format!("phone {}", p.name),
                format!("{} does not answer ping on {w}", plan.addr),
                format!(
                    "wake the phone, check Wi-Fi is on and connected to {} (`matador devices prepare`)",
                    lab.router.ssid
                ),
            );
        }
    }

    // Capture interfaces (generated router): c-<phone> up and mirrored.
    if site.capture {
        let ing = run(Cmd::new("tc")
            .netns(ns)
            .args(["filter", "show", "dev", w, "ingress"]));
        let eg = run(Cmd::new("tc")
            .netns(ns)
            .args(["filter", "show", "dev", w, "egress"]));
        for p in &lab.phones {
            let c = super::generate::capture_if(&p.name);
            let tag = format!("Mirror to device {c})");
            let name = format!("capture {}", p.name);
            match link_state(ns, &c) {
                Some(true) if ing.contains(&tag) && eg.contains(&tag) => {
                    r.ok(name, format!("{c} mirrors {} both ways", p.addr))
                }
                Some(true) => r.bad(
                    Status::Fail,
                    name,
                    format!(
                        "{c} exists but {w} does not mirror {} to it (tc filters gone?)",
                        p.addr
                    ),
                    "run router-up.sh again (it recreates the tc filters)".into(),
                ),
                _ => r.bad(
                    Status::Fail,
                    name,
                    format!(
                        "capture interface {c} is missing or down: the campaign cannot capture {}",
                        p.name
                    ),
                    "run router-up.sh".into(),
                ),
            }
        }
    }

    // Rules and tables.
    for (p, plan) in lab.phones.iter().zip(&phones) {
        let t = &tunnels[plan.node];
        let out = run(ip(ns)
            .args(["-4", "rule", "show", "priority"])
            .arg(plan.priority.to_string()));
        let want = format!("from {} lookup {}", p.addr, t.table);
        if out.contains(&want) {
            r.ok(
                format!("rule {}", p.name),
                format!("priority {}: {want}", plan.priority),
            );
        } else {
            r.bad(
                Status::Fail,
                format!("rule {}", p.name),
                format!(
                    "priority {}: expected `{want}`, found `{}`",
                    plan.priority,
                    out.trim()
                ),
                format!(
                    "`{}` (or run router-up.sh)",
                    in_ns(&format!("ip rule add {want} priority {}", plan.priority))
                ),
            );
        }
    }
    for (t, ifname) in tunnels.iter().zip(&site.tunnel_ifs) {
        let out = run(ip(ns)
            .args(["-4", "-o", "route", "show", "table"])
            .arg(t.table.to_string()));
        let routes = table_routes(&out);
        let tun = routes
            .iter()
            .find(|(k, d, _)| k == "default" && d.as_deref() == Some(ifname.as_str()));
        let unreach = routes.iter().find(|(k, _, _)| k == "unreachable default");
        let foreign: Vec<_> = routes
            .iter()
            .filter(|(k, d, _)| {
                !k.starts_with("unreachable") && d.as_deref() != Some(ifname.as_str())
            })
            .collect();
        let name = format!("table {} ({})", t.table, t.node);
        if !foreign.is_empty() {
            r.bad(
                Status::Fail,
                name,
                format!(
                    "routes not through {ifname}: {foreign:?} — traffic can leak around the tunnel"
                ),
                format!(
                    "`{}` and run router-up.sh",
                    in_ns(&format!("ip route flush table {}", t.table))
                ),
            );
            continue;
        }
        match (tun, unreach) {
            (_, None) => r.bad(
                Status::Fail,
                name,
                "no `unreachable default` fallback: if the tunnel dies the phones' traffic falls through to the main table (the router's uplink)".into(),
                format!("`{}`", in_ns(&format!("ip route replace unreachable default table {} metric 4096", t.table))),
            ),
            (Some(a), Some(b)) if b.2 <= a.2 => r.bad(
                Status::Fail,
                name,
                format!("the unreachable fallback (metric {}) is not worse than the tunnel route (metric {})", b.2, a.2),
                format!("`{}`", in_ns(&format!("ip route replace unreachable default table {} metric 4096", t.table))),
            ),
            (None, Some(_)) => r.bad(
                Status::Fail,
                name,
                format!("no default route through {ifname}: phones of {} get unreachable", t.node),
                format!("`{}` (the route disappears when the tunnel goes down)", in_ns(&format!("ip route replace default dev {ifname} table {} metric 10", t.table))),
            ),
            (Some(_), Some(_)) => r.ok(name, format!("default dev {ifname}, unreachable fallback")),
        }
    }

    // Tunnels.
    for (t, ifname) in tunnels.iter().zip(&site.tunnel_ifs) {
        let c = health::TunnelCheck {
            node: t.node.clone(),
            router_ns: site.netns.clone(),
            ifname: ifname.clone(),
            peer: IpAddr::V4(t.node_addr),
        };
        match health::check_tunnel(&c) {
            Ok(h) => r.ok(
                format!("tunnel {}", t.node),
                format!("handshake {} s ago, ping {:.2} ms", h.handshake_age_s, h.rtt_ms),
            ),
            Err(e) => r.bad(
                Status::Fail,
                format!("tunnel {}", t.node),
                e.to_string(),
                format!(
                    "`matador node check --node {}` (wireguard running, UDP port open, same keys as wg/router-{}.conf), and the router's uplink",
                    lab.nodes.iter().find(|n| n.name == t.node).map(|n| format!("{}@{}", n.user, n.host)).unwrap_or_default(),
                    t.node
                ),
            ),
        }
    }

    // Leaks and DNS, per phone.
    for (i, (p, plan)) in lab.phones.iter().zip(&phones).enumerate() {
        let t = &tunnels[plan.node];
        let ifname = &site.tunnel_ifs[plan.node];
        for dst in [lab.router.resolver, PROBE_DST] {
            let (ok, out, err) = ip(ns)
                .args(["-4", "route", "get"])
                .arg(dst.to_string())
                .arg("from")
                .arg(p.addr.to_string())
                .args(["iif", w])
                .output()
                .unwrap_or((false, String::new(), "ip failed".into()));
            let words: Vec<&str> = out.split_whitespace().collect();
            let dev = words
                .iter()
                .position(|x| *x == "dev")
                .and_then(|i| words.get(i + 1))
                .map(|s| s.to_string());
            let name = format!("leak {} → {dst}", p.name);
            if ok && dev.as_deref() == Some(ifname.as_str()) {
                r.ok(name, format!("via {ifname}"));
            } else if !ok && (err.contains("unreachable") || err.contains("No route to host")) {
                r.bad(
                    Status::Fail,
                    name,
                    format!("unreachable (tunnel {ifname} down?): no leak, but no traffic either"),
                    format!("bring tunnel {ifname} up (router-up.sh)"),
                );
            } else {
                r.bad(
                    Status::Fail,
                    name,
                    format!(
                        "LEAK: routed via {} instead of tunnel {ifname}: {}",
                        dev.as_deref().unwrap_or("?"),
                        (out + &err).trim()
                    ),
                    format!(
                        "restore the phone's rule: `{}`",
                        in_ns(&format!(
                            "ip rule add from {} lookup {} priority {}",
                            p.addr, t.table, plan.priority
                        ))
                    ),
                );
            }
        }
        // DNS through the node: from the phone's side where we can (virtual
        // lab), else from the router's inner address, whose probe rule sends
        // it into the same tunnel.
        let phone_ns = site.phone_netns.get(i).cloned().flatten();
        let (from_ns, bind, how) = match &phone_ns {
            Some(pn) => (Some(pn.clone()), None, format!("from {}", p.name)),
            None => (
                site.netns.clone(),
                Some(t.router_addr),
                format!("from {}", t.router_addr),
            ),
        };
        let rx0 = rx_bytes(ns, ifname);
        let answer = ask(
            from_ns.as_deref(),
            bind,
            lab.router.resolver,
            &site.dns_name,
        );
        let rx1 = rx_bytes(ns, ifname);
        match answer {
            Ok(a) if !a.is_empty() && rx1 <= rx0 => r.bad(
                Status::Fail,
                format!("dns {}", p.name),
                format!(
                    "{} answered {a:?}, but the answer did not come back through {ifname} (received bytes unchanged): the reply took another path",
                    lab.router.resolver
                ),
                format!(
                    "on node {}: NAT (MASQUERADE) of the WLAN out of its uplink is missing, so replies are routed around the tunnel (`matador node check`)",
                    t.node
                ),
            ),
            Ok(a) if !a.is_empty() => r.ok(
                format!("dns {}", p.name),
                format!("{} → {a:?} via {} ({how})", site.dns_name, t.node),
            ),
            Ok(_) => r.bad(
                Status::Fail,
                format!("dns {}", p.name),
                format!("resolver {} answered without an address for {}", lab.router.resolver, site.dns_name),
                "check the node's upstream resolver (`matador node check`)".into(),
            ),
            Err(e) => r.bad(
                Status::Fail,
                format!("dns {}", p.name),
                format!("no DNS answer from {} through {} ({how}): {e}", lab.router.resolver, t.node),
                format!(
                    "on node {}: NAT of the WLAN out of its uplink and the resolver's DNAT (`matador node check`; `iptables -t nat -S` on the node)",
                    t.node
                ),
            ),
        }
    }

    // Second line of defence: WLAN catch-all rule and firewall guard.
    let guard = lab.router.priority_base + 999;
    let rules = run(ip(ns).args(["-4", "rule", "show"]));
    if rules
        .lines()
        .any(|l| l.contains(&format!("iif {w}")) && l.contains("unreachable"))
    {
        r.ok(
            "wlan catch-all".into(),
            format!("unknown WLAN sources are unreachable (priority {guard})"),
        );
    } else {
        r.bad(
            Status::Warn,
            "wlan catch-all".into(),
            "no `iif WLAN unreachable` rule: a host on the WLAN that is not a listed phone would use the main table".into(),
            format!("`{}`", in_ns(&format!("ip rule add iif {w} unreachable priority {guard}"))),
        );
    }
    let nft = Cmd::new("nft")
        .netns(ns)
        .args(["list", "table", "inet", "matador"])
        .output();
    let ipt = Cmd::new("iptables")
        .netns(ns)
        .args(["-w", "-S", "FORWARD"])
        .output();
    let nft_ok = matches!(&nft, Ok((true, out, _)) if out.contains("leak guard"));
    let ipt_ok = matches!(&ipt, Ok((true, out, _)) if out.contains("leak guard"));
    if nft_ok || ipt_ok {
        r.ok(
            "firewall".into(),
            format!(
                "leak guard in {}",
                if nft_ok { "nftables" } else { "iptables" }
            ),
        );
    } else {
        r.bad(
            Status::Warn,
            "firewall".into(),
            "no leak guard in the forward path (policy routing alone keeps traffic in the tunnels)"
                .into(),
            "`nft -f router.nft` (or `iptables-restore < router.iptables`)".into(),
        );
    }
    r.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parsed() {
        let out = "default dev wg-de-1 scope link metric 10 \nunreachable default metric 4096 \n";
        let r = table_routes(out);
        assert_eq!(r[0], ("default".into(), Some("wg-de-1".into()), 10));
        assert_eq!(r[1], ("unreachable default".into(), None, 4096));
    }
}
